from tgv_deploy.cli import main

main()
