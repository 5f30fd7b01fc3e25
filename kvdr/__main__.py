from kvdr.cli import main

main()
