# Compute nodes: native services are scheduled here; KVM is available to them.
{ ... }:
{
  imports = [
    ./common.nix
    ./mirrored-boot.nix
  ];

  boot.kernelModules = [ "kvm-intel" "kvm-amd" ];
  boot.kernel.sysctl."vm.swappiness" = 10;
  networking.firewall.allowedTCPPorts = [ 8443 ];
}
