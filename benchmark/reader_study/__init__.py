"""Reader study: readers tell real images from the lesion GAN's fakes in a browser; MRMC analysis of their answers next
to the real-vs-fake detector and the attacked model on the same images.

`python -m benchmark reader-study create | add-reader | serve | report` (see benchmark.reader_study.commands).
"""
