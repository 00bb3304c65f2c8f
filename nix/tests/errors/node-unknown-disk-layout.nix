# A node names a disk layout that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 uses unknown disk layout 'raid10'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.diskLayout = "raid10"; };
}
