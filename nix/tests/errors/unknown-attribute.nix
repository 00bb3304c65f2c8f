# A typo is an error, not an ignored setting.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: classes.worker.hardware has unknown attribute 'minMemroy'; known attributes: disks, minCpuThreads, minMemory, nics, virtualization";
  parity = false;
  declaration = lib.recursiveUpdate base { classes.worker.hardware.minMemroy = "60GiB"; };
}
