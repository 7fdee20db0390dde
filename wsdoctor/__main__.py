"""Allow ``python -m wsdoctor``."""

from wsdoctor.entry import main

main()
