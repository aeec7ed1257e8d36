"""Benchmarks for the goals in docs/scale.md: ``python -m benchmarks`` (or ``make bench``).

Every figure is a ratio to a baseline measured in the same run on the same machine,
because absolute times on shared machines are noisy.  Data comes from a seed
(:class:`rejection_fhir.worksheet.synthetic.ResponseFactory`), so two runs measure the same work.
"""
