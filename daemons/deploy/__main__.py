from daemons.deploy.cli import main

main(prog_name="fire-deploy")
