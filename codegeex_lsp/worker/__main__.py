"""`python -m codegeex_lsp.worker`: how a language server starts a model worker."""

import sys

from codegeex_lsp.worker.daemon import main

sys.exit(main())
