# Node names become hostnames.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: node name 'cp_3' is not a valid hostname";
  parity = true;
  declaration = lib.recursiveUpdate base {
    nodes.cp_3 = {
      class = "control";
      rack = "rack2";
      ipPool = "rack2-v4";
    };
  };
}
