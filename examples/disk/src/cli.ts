process.stderr.write("imagemode-disk: not implemented yet\n");
process.exitCode = 2;
