"""Images in: DICOM reading, data set folders, preprocessing cache, the synthetic phantom."""
