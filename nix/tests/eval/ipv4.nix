# IPv4 and size arithmetic.
let
  ipv4 = (import ../../lib).ipv4;
  types = import ../../lib/types.nix;
  net = ipv4.parseCidr "10.0.1.0/28";
in
{
  parseAndFormatRoundTrip = {
    expr = map (a: ipv4.format (ipv4.parse a)) [ "0.0.0.0" "10.20.1.11" "255.255.255.255" ];
    expected = [ "0.0.0.0" "10.20.1.11" "255.255.255.255" ];
  };
  parseRefusesMalformedAddresses = {
    expr = map ipv4.parse [ "10.0.1" "10.0.1.256" "10.0.01.1" "10.0.1.1/24" "ten.0.0.1" ];
    expected = [ null null null null null ];
  };
  cidrBounds = {
    expr = {
      inherit (net) prefixLength size;
      first = ipv4.format net.first;
      last = ipv4.format net.last;
      usable = map ipv4.format [ (ipv4.usableFirst net) (ipv4.usableLast net) ];
    };
    expected = {
      prefixLength = 28;
      size = 16;
      first = "10.0.1.0";
      last = "10.0.1.15";
      usable = [ "10.0.1.1" "10.0.1.14" ];
    };
  };
  pointToPointNetworksUseBothAddresses = {
    expr = map ipv4.format [ (ipv4.usableFirst (ipv4.parseCidr "10.0.0.0/31")) (ipv4.usableLast (ipv4.parseCidr "10.0.0.0/31")) ];
    expected = [ "10.0.0.0" "10.0.0.1" ];
  };
  wholeSpace = {
    expr = ipv4.format (ipv4.parseCidr "0.0.0.0/0").last;
    expected = "255.255.255.255";
  };
  cidrErrors = {
    expr = map (c: (ipv4.parseCidr c).error) [ "10.0.1.5/24" "10.0.1.0/33" "10.0.1.0" ];
    expected = [
      "10.0.1.5/24 has host bits set; did you mean 10.0.1.0/24?"
      "'10.0.1.0/33' is not an IPv4 CIDR such as 10.0.1.0/24"
      "'10.0.1.0' is not an IPv4 CIDR such as 10.0.1.0/24"
    ];
  };
  overlaps = {
    expr = map (pair: ipv4.overlaps (ipv4.parseCidr (builtins.elemAt pair 0)) (ipv4.parseCidr (builtins.elemAt pair 1))) [
      [ "10.0.1.0/28" "10.0.1.8/29" ]
      [ "10.0.1.0/28" "10.0.1.16/28" ]
      [ "10.0.0.0/8" "10.255.0.0/16" ]
    ];
    expected = [ true false true ];
  };
  sizes = {
    expr = map types.parseSize [ "4096" "512MiB" "64GiB" "800GB" "1.5TB" "16TB" "60G" "GiB" ];
    expected = [ 4096 536870912 68719476736 800000000000 1500000000000 16000000000000 null null ];
  };
}
