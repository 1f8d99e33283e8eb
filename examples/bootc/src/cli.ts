process.stderr.write("imagemode-bootc: not implemented yet\n");
process.exitCode = 2;
