from trainsh.cli import main

raise SystemExit(main())
