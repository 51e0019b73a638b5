package main

// version is poolguard's release, stamped by the image build
// (-ldflags -X main.version=...; see cmd/image-build).
var version = "devel"
