from odenet.cli import main

main()
