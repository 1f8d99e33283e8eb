process.stderr.write("imagemode-oci: not implemented yet\n");
process.exitCode = 2;
