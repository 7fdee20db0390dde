"""Allow ``python -m wsdoctor``."""

from wsdoctor.cli import main

main()
