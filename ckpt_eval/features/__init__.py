"""What a feature is made of and how it is cached: the extractor registry, fingerprints, the
on-disk format, streamed statistics. Plan-time code: no torch (the extractors live in
`ckpt_eval.extract`)."""
