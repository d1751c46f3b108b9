// The lab's pod sandbox ("pause") binary: no registry image can be pulled here.
module seatrials.lab/pause

go 1.24.0
