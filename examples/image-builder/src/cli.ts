process.stderr.write("imagemode-build: not implemented yet\n");
process.exitCode = 2;
