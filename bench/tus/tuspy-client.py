"""Uploads one file with tuspy, for bench/tus.sh.

Usage: python tuspy-client.py FILE ENDPOINT [CHUNK_BYTES]; prints the upload URL when done.
Without CHUNK_BYTES tuspy uses its own default chunk size.
"""
import os
import sys

from tusclient import client


def main() -> None:
    path, endpoint = sys.argv[1], sys.argv[2]
    options = {}
    if len(sys.argv) > 3:
        options["chunk_size"] = int(sys.argv[3])
    uploader = client.TusClient(endpoint).uploader(
        path,
        metadata={"filename": os.path.basename(path), "filetype": "video/mp4"},
        retries=3,
        retry_delay=1,
        **options,
    )
    uploader.upload()
    print(uploader.url)


if __name__ == "__main__":
    main()
