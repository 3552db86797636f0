from iau_cli.entry import main

main()
