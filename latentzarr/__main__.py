from latentzarr.cli import main

main()
