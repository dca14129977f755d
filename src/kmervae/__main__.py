import sys

from kmervae.cli import main

sys.exit(main())
