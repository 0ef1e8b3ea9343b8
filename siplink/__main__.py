from siplink.cli import main

raise SystemExit(main())
