"""Images, video, ground-truth pairs, stream sources and sinks."""
