from iau_cli.cli.app import main

main()
