"""Copying extracts into intake from elsewhere: an agency's pull source (`pull`), its S3 uploads
(`s3_uploads`), both through one copy (`copy`) that lands each object whole, once and private."""
