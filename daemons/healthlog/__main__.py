from daemons.healthlog.cli import main

main(prog_name="healthlog")
