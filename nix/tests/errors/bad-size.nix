# Sizes need a unit Sendan knows (G is not one: GB or GiB is).
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: classes.worker.hardware.minMemory: '60G' is not a size";
  parity = false;
  declaration = lib.recursiveUpdate base { classes.worker.hardware.minMemory = "60G"; };
}
