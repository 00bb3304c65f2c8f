# A class defaults its nodes to a profile that is not declared.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: class 'control' uses unknown profile 'control-plane'";
  parity = false;
  declaration = lib.recursiveUpdate base { classes.control.profile = "control-plane"; };
}
