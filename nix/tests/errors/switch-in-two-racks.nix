# A switch belongs to one rack.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: switch 'rack1-tor' is declared in racks 'rack1' and 'rack2'";
  parity = true;
  declaration = lib.recursiveUpdate base { racks.rack2.switches = [ "rack2-tor" "rack1-tor" ]; };
}
