"""Reader study: radiologists read originals and the lesion GAN's fakes in a browser; MRMC analysis of their answers.

`python -m benchmark reader-study create | serve | report` (see benchmark.reader_study.commands).
"""
