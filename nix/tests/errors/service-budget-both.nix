# A disruption budget that sets both of its forms.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: service 'web': budget sets both maxUnavailable and minHealthy; set one";
  parity = true;
  declaration = lib.recursiveUpdate base { services.web.budget = { maxUnavailable = 1; minHealthy = 1; }; };
}
