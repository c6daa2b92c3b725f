from looper_engine.cli import main

raise SystemExit(main())
