from streamscore.cli import main

main()
