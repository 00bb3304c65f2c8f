# The cluster name must be a DNS label.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: cluster name 'Lab 1' is not valid";
  parity = true;
  declaration = lib.recursiveUpdate base { name = "Lab 1"; };
}
