from varreinterp.entry import main

raise SystemExit(main())
