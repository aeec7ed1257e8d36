from rejection_fhir.cli import main

main()
