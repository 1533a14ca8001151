from aetrain.cli import main

main()
