# No disk layout on the node, its pool or its class.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node cp-1 has no disk layout: set diskLayout on the node, its pool or its class";
  parity = false;
  declaration = lib.recursiveUpdate base {
    classes.solo.profile = "base";
    nodes.cp-1.class = "solo";
  };
}
