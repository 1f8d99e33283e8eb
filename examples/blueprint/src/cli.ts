process.stderr.write("imagemode-blueprint: not implemented yet\n");
process.exitCode = 2;
