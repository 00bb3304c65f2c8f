# A class defaults its nodes to a disk layout that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: class 'worker' uses unknown disk layout 'raid10'";
  parity = true;
  declaration = lib.recursiveUpdate base {
    classes.worker.diskLayout = "raid10";
    pools.workers.diskLayout = "single";
  };
}
