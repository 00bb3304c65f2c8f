# Values are type-checked, with the attribute path in the message.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: nodes.cp-1.address must be an IPv4 address such as 10.0.1.5, got the integer 5";
  parity = false;
  declaration = lib.recursiveUpdate base { nodes.cp-1.address = 5; };
}
