# An instance cannot be healthy for longer than its deadline.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': update.healthyDeadlineSeconds (300) must exceed minHealthySeconds (300)";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.update.minHealthySeconds = 300; };
}
