"""Local fakes of the forge APIs: real HTTP servers on 127.0.0.1 that check and record calls."""
