# A static node in a rack that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 uses unknown rack 'rack9'";
  parity = true;
  declaration = lib.recursiveUpdate base { nodes.cp-1.rack = "rack9"; };
}
