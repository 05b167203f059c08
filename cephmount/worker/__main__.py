import sys

from cephmount.worker.main import main

sys.exit(main(sys.argv[1:]))
