from webchat.cli import main

main()
