process.stderr.write("imagemode-ostree: not implemented yet\n");
process.exitCode = 2;
