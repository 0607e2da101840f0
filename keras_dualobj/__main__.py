import sys

from keras_dualobj.cli import main

sys.exit(main())
