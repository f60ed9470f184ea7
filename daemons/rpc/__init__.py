"""Code generated from proto/airquality.proto; regenerate with bin/generate-proto."""
