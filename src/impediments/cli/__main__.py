import sys

from impediments.cli import main

sys.exit(main())
