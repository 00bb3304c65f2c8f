# A static node names a class that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 uses unknown class 'gpu'";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.cp-1 = {
      class = "gpu";
      profile = "base";
      diskLayout = "single";
    };
  };
}
