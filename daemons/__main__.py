from daemons.server import main

main()
